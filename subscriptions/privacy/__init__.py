"""A person's data: exporting it, erasing it, and keeping no more than needed."""
