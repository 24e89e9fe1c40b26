"""Moving readers in and out in bulk: imports and exports."""
