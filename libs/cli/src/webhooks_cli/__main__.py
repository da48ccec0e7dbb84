"""`python -m webhooks_cli` is `whctl`."""

from webhooks_cli.main import cli

if __name__ == "__main__":
    cli()
