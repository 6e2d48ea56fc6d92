"""The toy-car network and its loss (TensorFlow / Keras 3; imported only for training).

A small classic CNN: 3x3 convolutions with batch norm and ReLU6, max pooling to stride 8,
then a stride-16 context branch (max pool, depthwise-separable convs, nearest upsampling)
merged back at stride 8, and a 1x1 head with the five channels of ``targets``.

Op choice is deliberate: every op here (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D,
RESIZE_NEAREST_NEIGHBOR, CONCATENATION, LOGISTIC) converts to int8 kernels whose versions
tflite-runtime 2.14 also has; ``convert.check_runs`` proves it on every conversion.
"""

from __future__ import annotations

from typing import Any

from robovision.train.config import Config
from robovision.train.targets import CHANNELS


def build_model(config: Config) -> Any:
    """A Keras model: float input (1, s, s, 3) RGB in 0..1, output (1, g, g, 5) logits."""
    import tensorflow as tf

    keras, layers = tf.keras, tf.keras.layers
    m = config.model
    w = m.widths

    def conv(x: Any, filters: int, kernel: int = 3, name: str = "", norm: bool = True) -> Any:
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=not norm, name=f"{name}_conv")(x)
        if norm:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu")(x)

    def separable(x: Any, filters: int, name: str) -> Any:
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        return conv(x, filters, kernel=1, name=f"{name}_pw")

    inputs = keras.Input((m.input_size, m.input_size, 3), name="image")
    # No batch norm at the two full-size stages: in training it costs more than everything
    # after them (measured: 75 of 100 ms per batch of 24 for the first stage alone).
    x = conv(inputs, w[0], name="s1", norm=False)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = conv(x, w[1], name="s2", norm=False)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = conv(x, w[2], name="s4")
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = conv(x, w[3], name="s8a")
    fine = separable(x, w[3], name="s8b")

    y = layers.MaxPooling2D(2, name="pool4")(fine)
    y = separable(y, w[4], name="s16a")
    y = separable(y, w[5], name="s16b")
    y = conv(y, w[3], kernel=1, name="s16c")
    y = layers.Resizing(config.grid_size, config.grid_size, interpolation="nearest", name="up")(y)

    z = layers.Concatenate(name="merge")([fine, y])
    z = separable(z, m.head_width, name="head_a")
    z = separable(z, m.head_width, name="head_b")
    # Start from "no car anywhere" (score 0.01) and mid-sized boxes, not from 0.5 everywhere.
    prior = keras.initializers.Constant([-4.6, 0.0, 0.0, -1.1, -1.1])
    logits = layers.Conv2D(CHANNELS, 1, padding="same", bias_initializer=prior, name="grid_logits")(z)
    return keras.Model(inputs, logits, name=m.name)


def with_sigmoid(model: Any) -> Any:
    """The deployable model: the same layers with a sigmoid on every output channel."""
    import tensorflow as tf

    outputs = tf.keras.layers.Activation("sigmoid", name="grid")(model.output)
    return tf.keras.Model(model.input, outputs, name=model.name)


def grid_loss(config: Config) -> Any:
    """Loss ``f(targets, logits) -> (total, centre, box)`` on batches (b, g, g, 7) and (b, g, g, 5).

    Centre score: the penalty-reduced focal loss of CenterNet (positives where the target
    is exactly 1, negatives down-weighted near a centre by ``(1 - heat)^4``), summed and
    divided by the number of cars. Box: ``1 - GIoU`` of the predicted and true boxes plus
    L1 of the centre in cells, weighted by the target bump and divided by its sum (GIoU
    makes the size error relative to the car, so small and large cars count alike).
    """
    import tensorflow as tf

    grid = config.grid_size
    span = config.model.offset_span_cells
    giou_weight = config.train.giou_loss_weight
    offset_weight = config.train.offset_loss_weight
    centres = tf.range(grid, dtype=tf.float32) + 0.5
    col = tf.reshape(centres, (1, 1, grid))
    row = tf.reshape(centres, (1, grid, 1))

    def loss(targets: Any, logits: Any) -> tuple[Any, Any, Any]:
        heat, mask = targets[..., 0], targets[..., 6]
        logit = logits[..., 0]
        prob = tf.sigmoid(logit)
        positive = tf.cast(heat >= 0.999, tf.float32)
        pos_term = -tf.math.log_sigmoid(logit) * tf.square(1.0 - prob) * positive
        neg_term = (
            -tf.math.log_sigmoid(-logit) * tf.square(prob) * tf.pow(1.0 - heat, 4.0) * (1.0 - positive) * mask
        )
        cars = tf.maximum(tf.reduce_sum(positive), 1.0)
        focal = (tf.reduce_sum(pos_term) + tf.reduce_sum(neg_term)) / cars

        box = tf.sigmoid(logits[..., 1:5])
        cx = col + (box[..., 0] - 0.5) * span
        cy = row + (box[..., 1] - 0.5) * span
        bw, bh = box[..., 2] * grid, box[..., 3] * grid
        weight = targets[..., 5]
        offset_l1 = tf.abs(cx - targets[..., 1]) + tf.abs(cy - targets[..., 2])
        giou = _giou((cx, cy, bw, bh), (targets[..., 1], targets[..., 2], targets[..., 3], targets[..., 4]))
        per_cell = giou_weight * (1.0 - giou) + offset_weight * offset_l1
        box_loss = tf.reduce_sum(weight * per_cell) / tf.maximum(tf.reduce_sum(weight), 1.0)
        return focal + box_loss, focal, box_loss

    return loss


def _giou(box_cxcywh: tuple[Any, ...], true_cxcywh: tuple[Any, ...]) -> Any:
    """Generalized IoU of boxes given as (cx, cy, w, h) tensors in the same units, elementwise."""
    import tensorflow as tf

    cx, cy, w, h = box_cxcywh
    tcx, tcy, tw, th = true_cxcywh
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    tx0, tx1, ty0, ty1 = tcx - tw / 2, tcx + tw / 2, tcy - th / 2, tcy + th / 2
    inter_w = tf.nn.relu(tf.minimum(x1, tx1) - tf.maximum(x0, tx0))
    inter_h = tf.nn.relu(tf.minimum(y1, ty1) - tf.maximum(y0, ty0))
    inter = inter_w * inter_h
    union = w * h + tw * th - inter
    hull = (tf.maximum(x1, tx1) - tf.minimum(x0, tx0)) * (tf.maximum(y1, ty1) - tf.minimum(y0, ty0))
    iou = inter / tf.maximum(union, 1e-6)
    return iou - (hull - union) / tf.maximum(hull, 1e-6)
