from wbc_data.cli import main

main()
