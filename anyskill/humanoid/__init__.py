"""The simulator-free humanoid: its description read from the MJCF (names, tree, limits, gains, PD map), rotations
(one quaternion convention, wxyz), the skeleton with batched forward kinematics, and the observation functions
(223-D policy observation, 125-D AMP frame) shared by the simulator and the motion library. Imports no simulator
environment and no motion data."""
