"""What every program runs in: its options (flags.py), logging, signals and
exit status (program.py), and TensorFlow's known noise kept off the terminal
(quiet.py). Only the programs import it."""
