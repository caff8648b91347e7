"""The classic TensorFlow CIFAR-10 tutorial, rebuilt for TensorFlow 2.21.

In front, the tutorial's five modules, as a learner meets them:

  cifar10_input            record files to distorted, batched images (queues)
  cifar10                  the network, its loss, the train op
  cifar10_train            the trainer on one device         (`make train`)
  cifar10_multi_gpu_train  towers on several GPUs  (`make train-multigpu`)
  cifar10_eval             the eval loop beside training      (`make eval`)

and the wings they stand on:

  core/        the ground floor: the tutorial's numbers (defaults), the
               record files, summaries, one-line errors, signals, GPUs,
               the processes a program starts
  engine/      what the trainers run: the run's settings (every "auto"
               decided once), this machine, where the variables live
               (placement), the graph for 1..N towers, the training loop,
               its checkpoints and train dir, the eval loop
  cluster/     training across processes and machines: a task's part,
               synchronous steps, the processes of a cluster on this
               machine (processes) and their private network
  own_images/  your own images: convert folders to records, predict
  tools/       around the runs: the data download, TensorBoard, plots, the
               bench
  shell/       what every program runs in: options (flags), logging, exit
               status, TensorFlow's noise kept off the terminal

The rule (tests/test_layout.py checks it, without exceptions): a library
module imports only from its own floor or those below (core; the tutorial's
cifar10_input and cifar10; engine; then cluster, own_images and tools); the
shell imports only the ground floor; a program (a module run with `python
-m`: the trainers, eval, the tools, the launcher, a cluster's task) imports
libraries and the shell, never another program. Importing the package
changes nothing: each program sets TensorFlow's defaults before it imports
it (shell/quiet.py).

Run a program with `python -m cifar10_tutorial.<module> --help`, e.g.
`python -m cifar10_tutorial.cifar10_train`, `...tools.bench`,
`...cluster.launch`; the Makefile's targets run them with the README's
defaults.
"""
