"""Members and the goal: the payment platform's events, the exact live count, milestones."""
