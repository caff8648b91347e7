"""The shared training loop: stopping on a diverged loss, keeping good work."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import train_graph
from cifar10_tutorial.shell import flags


@pytest.mark.parametrize('steps_per_run, checkpoint_steps', [(1, 1), (10, 3)])
def test_nan_loss_stops_before_its_step_is_checkpointed(tmp_path,
                                                        steps_per_run,
                                                        checkpoint_steps):
  train_dir = str(tmp_path)
  cfg = settings.resolve(flags.training_config(
      train_dir=train_dir, max_steps=100, log_frequency=1,
      steps_per_run=steps_per_run), on_gpu=False)
  with tf.Graph().as_default():
    global_step = tf.train.get_or_create_global_step()
    w = tf.Variable(1.0, name='w')

    def step(with_summaries):
      loss = tf.sqrt(w.read_value())   # 1, 0.77, 0.45, then NaN at step 4
      with tf.control_dependencies([loss]):
        train_op = tf.group(w.assign_sub(0.4), global_step.assign_add(1))
      return train_graph.Step(train_op, loss, [tf.summary.scalar('w', w)]
                           if with_summaries else [])

    graph = train_graph.loop_graph(step, global_step, 1)
    cfg = settings.replace(cfg, save_checkpoint_steps=checkpoint_steps)
    with pytest.raises(loop.LossDivergedError) as e:
      loop.train(graph, cfg, machine.session_config(cfg))
  message = str(e.value)
  assert message.startswith('the loss became nan at step 4;')
  assert message.endswith('the next run resumes from %s/model.ckpt-3 '
                          '(step 3)' % train_dir)
  path = tf.train.latest_checkpoint(train_dir)
  assert path.endswith('model.ckpt-3')
  np.testing.assert_allclose(tf.train.load_variable(path, 'w'), 1.0 - 3 * 0.4,
                             rtol=1e-6)
