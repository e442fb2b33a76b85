"""Model builders for fitness evaluation.

A builder is a function ``builder(input_shape, num_classes) -> keras.Model``
returning a fresh, uncompiled model whose output is a softmax over
``num_classes`` (evolved losses read probabilities).  Input images arrive
scaled to ``[0, 1]``.  Builders are looked up by name in :data:`MODELS`, or
given as ``"package.module:function"``, which every worker process can import
(use that form for your own models in parallel searches).
"""

import importlib
import math

__all__ = [
    "INCEPTION_MIN_SIZE",
    "MODELS",
    "register_model",
    "get_model_builder",
    "build_model",
    "small_cnn",
    "inception_v3",
]

#: The smallest height and width InceptionV3 accepts.
INCEPTION_MIN_SIZE = 75


def small_cnn(input_shape, num_classes):
    """A small convolutional network for quick searches on a CPU.

    Two 3x3 convolution blocks with max pooling, a 64-unit dense layer with
    dropout and a softmax output: a few thousand parameters on 8x8 digits.

    :param input_shape: ``(height, width, channels)``.
    :param num_classes: number of output classes.
    :returns: an uncompiled :class:`keras.Model`.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(padding="same")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def inception_v3(input_shape, num_classes):
    """InceptionV3 trained from scratch, as in the NGL paper's setup.

    Grayscale inputs are repeated to three channels; images are upsampled by
    the smallest integer factor that reaches InceptionV3's minimum size
    (75x75; CIFAR's 32x32 becomes 96x96, Fashion-MNIST's 28x28 84x84).  The
    base is ``InceptionV3(include_top=False, weights=None, pooling='max')``
    and the head Flatten → BN → Dense(128, relu) → Dropout(0.5) → BN →
    Dense(64, relu) → Dropout(0.5) → BN → Dense(C, softmax).

    :param input_shape: ``(height, width, channels)`` with 1 or 3 channels.
    :param num_classes: number of output classes.
    :returns: an uncompiled :class:`keras.Model`.
    :raises ValueError: for other channel counts.
    """
    import keras
    from keras import layers

    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ValueError(f"inception_v3 takes images with 1 or 3 channels, got input_shape {tuple(input_shape)}")
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    if channels == 1:
        x = layers.Concatenate()([x, x, x])
    factor = math.ceil(INCEPTION_MIN_SIZE / min(height, width))
    if factor > 1:
        x = layers.UpSampling2D(size=factor)(x)
    base = keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(height * factor, width * factor, 3), pooling="max"
    )
    x = base(x)
    x = layers.Flatten()(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.BatchNormalization()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="inception_v3_classifier")


#: name -> builder ``builder(input_shape, num_classes) -> keras.Model``.
MODELS = {"small_cnn": small_cnn, "inception_v3": inception_v3}


def register_model(name, builder):
    """Add a model builder to the registry (in this process).

    Worker processes do not see registrations made at run time; to use your
    own model in a parallel search, name it as ``"package.module:function"``.

    :param name: the name configurations refer to.
    :param builder: ``builder(input_shape, num_classes) -> keras.Model``.
    :returns: ``builder``.
    :raises ValueError: if ``name`` is taken by another builder or ``builder`` is not callable.
    """
    if not callable(builder):
        raise ValueError(f"the builder of model {name!r} must be callable")
    if name in MODELS and MODELS[name] is not builder:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = builder
    return builder


def get_model_builder(name):
    """Find a model builder by registry name or import path.

    :param name: a key of :data:`MODELS` or ``"package.module:function"``.
    :returns: the builder.
    :raises ValueError: if the name is unknown or the import path does not resolve.
    """
    if name in MODELS:
        return MODELS[name]
    if isinstance(name, str) and ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            builder = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import model builder {name!r}: {error}") from None
        if callable(builder):
            return builder
    raise ValueError(
        f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))} or give 'package.module:function'"
    )


def build_model(name, input_shape, num_classes):
    """Build a fresh model.

    :param name: a key of :data:`MODELS` or ``"package.module:function"``.
    :param input_shape: ``(height, width, channels)``.
    :param num_classes: number of output classes.
    :returns: an uncompiled :class:`keras.Model`.
    """
    return get_model_builder(name)(tuple(input_shape), int(num_classes))
