"""Neural networks: the LUT teacher, the INR student and the two-phase refinement."""
