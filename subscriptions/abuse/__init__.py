"""What keeps bots and bombers out: rate limits, the form token and honeypot, the optional
challenge."""
