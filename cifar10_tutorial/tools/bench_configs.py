"""What `make bench` measures: its training, input and eval configurations
and its whole runs, by name (the bench's --help lists them), for the bench
(bench.py) and the process that measures one of them (measure.py).
"""
from cifar10_tutorial.core import defaults

# The configurations: environment and flag overrides for the child process.
_TUTORIAL_ENV = {'TF_ENABLE_ONEDNN_OPTS': '0'}
_PER_EXAMPLE = {'input_pipeline': 'per_example'}
TRAIN = {
    'tutorial': {'env': _TUTORIAL_ENV, 'flags': dict(lrn='tf', **_PER_EXAMPLE)},
    'onednn': {'flags': dict(lrn='tf', **_PER_EXAMPLE)},
    'lrn': {'flags': _PER_EXAMPLE},
    'default': {'flags': {}},
    'towers2': {'flags': {}, 'towers': 2},
    'split2': {'flags': {'batch_size': defaults.BATCH_SIZE // 2},
               'towers': 2},
    'bf16': {'flags': {'precision': 'bf16'}, 'slow': True},
}
INPUT = {name: {} for name in defaults.INPUT_PIPELINES}
EVAL = {
    'tutorial': {'env': _TUTORIAL_ENV,
                 'flags': dict(batch_size=128, lrn='tf', **_PER_EXAMPLE)},
    'default': {'flags': {}},
    'bf16': {'flags': {'precision': 'bf16'}, 'slow': True},
}


def _command_buffers(kinds):
  """XLA_FLAGS for XLA's command buffers (CUDA graphs) of these kinds of
  command, however few make a graph."""
  return ('--xla_gpu_enable_command_buffer=%s '
          '--xla_gpu_graph_min_graph_size=1' % kinds)


_KERNEL_GRAPHS = 'FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL'
# Also the compiled loop's while loop, its conditionals and NCCL's
# collectives: a whole run can be one graph.
_WHOLE_RUN_GRAPHS = _KERNEL_GRAPHS + ',COLLECTIVES,CONDITIONAL,WHILE'
# Whole training runs: the program, its flags, and the towers (examples per
# step = batch x towers). 'checkout': 'baseline' runs the --baseline copy.
RUNS = {
    'baseline': {'program': 'cifar10_train', 'flags': [],
                 'checkout': 'baseline'},
    'baseline_multi1': {'program': 'cifar10_multi_gpu_train',
                        'flags': ['--num_gpus', '1'], 'checkout': 'baseline'},
    'default': {'program': 'cifar10_train', 'flags': []},
    # The original tutorial's trainer, from --original (ready part only).
    'original': {'program': None, 'flags': [], 'checkout': 'original'},
    'steps1': {'program': 'cifar10_train', 'flags': ['--steps_per_run', '1']},
    'steps10': {'program': 'cifar10_train',
                'flags': ['--steps_per_run', '10']},
    'no_xla': {'program': 'cifar10_train', 'flags': ['--xla', 'false']},
    'no_prefetch': {'program': 'cifar10_train',
                    'flags': ['--prefetch_to_device', 'false']},
    'cpu_preprocess': {'program': 'cifar10_train',
                       'flags': ['--preprocess_on', 'cpu']},
    'bf16': {'program': 'cifar10_train', 'flags': ['--precision', 'bf16']},
    'graph_loop': {'program': 'cifar10_train',
                   'flags': ['--compiled_loop', 'false']},
    'multi1': {'program': 'cifar10_multi_gpu_train',
               'flags': ['--num_gpus', '1']},
    'multi2': {'program': 'cifar10_multi_gpu_train',
               'flags': ['--num_gpus', '2'], 'towers': 2},
    # multi2 with the all-reduce as TensorFlow's kernel, outside XLA.
    'multi2_kernel': {'program': 'cifar10_multi_gpu_train',
                      'flags': ['--num_gpus', '2'], 'towers': 2,
                      'env': {'CIFAR10_ALL_REDUCE': 'kernel'}},
    'multi2_graph_loop': {'program': 'cifar10_multi_gpu_train',
                          'flags': ['--num_gpus', '2', '--compiled_loop',
                                    'false'], 'towers': 2},
    'multi2_replicated': {'program': 'cifar10_multi_gpu_train',
                          'flags': ['--num_gpus', '2', '--variable_update',
                                    'replicated'], 'towers': 2},
    # Asynchronous: a global step is one worker's batch.
    'cluster1': {'program': 'cluster.launch',
                 'flags': ['--workers', '1', '--ps', '1']},
    'cluster2': {'program': 'cluster.launch',
                 'flags': ['--workers', '2', '--ps', '1']},
    # Synchronous: a global step is a batch from each worker.
    'allreduce2': {'program': 'cluster.launch',
                   'flags': ['--workers', '2', '--ps', '0'], 'towers': 2},
    # XLA's GPU runtime can replay a step's kernels as CUDA graphs
    # ("command buffers"): off, and on for every kind of kernel.
    'cmdbuf_off': {'program': 'cifar10_train', 'flags': [],
                   'env': {'XLA_FLAGS': '--xla_gpu_enable_command_buffer='}},
    'cmdbuf_all': {'program': 'cifar10_train', 'flags': [], 'env': {
        'XLA_FLAGS': _command_buffers(_KERNEL_GRAPHS)}},
    'cmdbuf_loop': {'program': 'cifar10_train', 'flags': [], 'env': {
        'XLA_FLAGS': _command_buffers(_WHOLE_RUN_GRAPHS)}},
    'multi2_cmdbuf': {'program': 'cifar10_multi_gpu_train',
                      'flags': ['--num_gpus', '2'], 'towers': 2, 'env': {
                          'XLA_FLAGS': _command_buffers(_WHOLE_RUN_GRAPHS)}},
    'multi2_lhs': {'program': 'cifar10_multi_gpu_train',
                   'flags': ['--num_gpus', '2'], 'towers': 2, 'env': {
                       'XLA_FLAGS':
                           '--xla_gpu_enable_latency_hiding_scheduler=true'}},
}
# Slow configurations (bf16 on a CPU without bfloat16 units) are timed
# over fewer steps, and eval over fewer images.
SLOW_STEPS, SLOW_WARMUP, SLOW_EVAL_EXAMPLES = 20, 3, 1000
