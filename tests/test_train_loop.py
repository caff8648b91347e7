"""The shared training loop: stopping on a diverged loss, keeping good work."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cifar10_tutorial import flags
from cifar10_tutorial import machine
from cifar10_tutorial import training


def test_nan_loss_stops_before_its_step_is_checkpointed(tmp_path):
  train_dir = str(tmp_path)
  cfg = flags.training_config(train_dir=train_dir, max_steps=100,
                              log_frequency=1)
  with tf.Graph().as_default():
    step = tf.train.get_or_create_global_step()
    w = tf.Variable(1.0, name='w')
    loss = tf.sqrt(w)   # 1, 0.77, 0.45, then sqrt(-0.2): NaN at step 4
    with tf.control_dependencies([loss]):
      train_op = tf.group(w.assign_sub(0.4), step.assign_add(1))
    with pytest.raises(training.LossDivergedError) as e:
      graph = training.TrainGraph(train_op, loss, step,
                                  [tf.summary.scalar('w', w)], 1)
      training.train(graph, cfg, machine.session_config(cfg),
                     checkpoint_steps=1)
  message = str(e.value)
  assert message.startswith('the loss became nan at step 4;')
  assert message.endswith('the next run resumes from %s/model.ckpt-3 '
                          '(step 3)' % train_dir)
  path = tf.train.latest_checkpoint(train_dir)
  assert path.endswith('model.ckpt-3')
  np.testing.assert_allclose(tf.train.load_variable(path, 'w'), 1.0 - 3 * 0.4,
                             rtol=1e-6)
