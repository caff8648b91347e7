"""Training across processes and machines on TensorFlow's runtime: a
worker's part (worker.py), synchronous steps (sync_steps.py), the per-task
program (cifar10_dist_train.py) and `make train-cluster`'s launcher, which
also runs cifar10_multi_gpu_train's process per GPU (launch.py)."""
