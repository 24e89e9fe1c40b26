"""What providers tell us back: each ESP's events read into ours, and what they change."""
