"""Target figures without the device: instruction counts under aarch64 emulation turned into time with a
core model, rooflines from the graph and the target's peaks, and their calibration on published figures."""
