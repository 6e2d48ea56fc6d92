"""Making the toy-car detector: data split, augmentation, network, int8 conversion, recipe.

Only ``network``, ``convert`` and ``recipe`` import TensorFlow, and only when called;
``config``, ``dataset``, ``augment`` and ``targets`` need numpy and OpenCV alone, so the
evaluation command can read labelled folders without TensorFlow installed.
"""
