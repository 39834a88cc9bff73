"""Gates: the pure rules that open a plugin's gate at a given time (rules), and condition checks run off the patrol."""
