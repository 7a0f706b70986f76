from wbc_data.console import main

main()
