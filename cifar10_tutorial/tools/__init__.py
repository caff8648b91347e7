"""Around the runs: the CIFAR-10 download (cifar10_data.py, `make data`),
TensorBoard (board.py), a run's plot (plot.py) and the bench (bench.py,
with measure.py, one measurement in a process of its own)."""
