"""Making the toy-car detector: data split, augmentation, network, int8 conversion, recipe.

Only ``network``, ``convert`` and ``recipe`` import TensorFlow, and only when called;
``config``, ``dataset``, ``carfree``, ``augment``, ``targets`` and ``scoring`` need numpy
and OpenCV alone, so ``robovision eval`` reads labelled folders without TensorFlow.
"""
