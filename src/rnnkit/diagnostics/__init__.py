"""Tools that show what the theory says: gradient flow, long-range memory tasks, gate activity."""
