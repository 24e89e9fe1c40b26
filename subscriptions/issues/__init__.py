"""Issues of a newsletter: writing, rendering and sending them to its readers."""
