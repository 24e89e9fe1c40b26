"""A reader's subscriptions and their rules: sign-up, confirmation, unsubscribing,
preferences, the newsletters open to sign-ups."""
