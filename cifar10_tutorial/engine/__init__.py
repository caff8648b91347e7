"""What the programs run: the machine's devices, the placement of variables
and gradients, the training graph for 1..N towers, the training loop with
its checkpoints and train dir, and the eval loop. Stands on core/ and the
tutorial's cifar10 and cifar10_input."""
