"""whctl: the development CLI of the webhook platform."""
