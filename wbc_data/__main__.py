from wbc_data.cli import app

app()
