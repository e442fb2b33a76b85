"""Model builders for fitness evaluation.

A builder is a function ``builder(input_shape, num_classes) -> keras.Model``
returning a fresh, uncompiled model whose output is a softmax over
``num_classes`` (evolved losses read probabilities).  Input images arrive
scaled to ``[0, 1]``.  Builders are looked up by name in :data:`MODELS`, or
given as ``"package.module:function"``, which every worker process can import
(use that form for your own models in parallel searches).  A module that is
not installed is also looked for in the current directory, as ``python -m``
and ``python script.py`` would find it, also under the ``deap-lossgp``
command.

:func:`build_model` can put an input pipeline in front of any builder:
seeded augmentation and upsampling, as Keras layers inside the model, so they
run on the GPU with the model (NGL's pipeline for InceptionV3).  Under the
``mixed_float16`` policy the model's output stays float32, so an evolved loss
(``exp``, ``log``) is computed in float32 and does not overflow float16.
"""

import importlib
import math
import os
import re
import sys

from .runtime import import_keras

__all__ = [
    "NGL_AUGMENTATION",
    "INCEPTION_MIN_SIZE",
    "MODELS",
    "register_model",
    "get_model_builder",
    "check_model_name",
    "is_import_path",
    "build_model",
    "small_cnn",
    "inception_v3",
]

#: The smallest height and width InceptionV3 accepts.
INCEPTION_MIN_SIZE = 75
#: NGL's augmentation (its ``ImageDataGenerator``): zoom, width and height
#: shift ranges, horizontal flips.
NGL_AUGMENTATION = {"zoom": 0.2, "shift": 0.1, "horizontal_flip": True}


def small_cnn(input_shape, num_classes):
    """A small convolutional network for quick searches on a CPU.

    Two 3x3 convolution blocks with max pooling, a 64-unit dense layer with
    dropout and a softmax output: a few thousand parameters on 8x8 digits.

    :param input_shape: ``(height, width, channels)``.
    :param num_classes: number of output classes.
    :returns: an uncompiled :class:`keras.Model`.
    """
    keras = import_keras()
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(padding="same")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def inception_v3(input_shape, num_classes):
    """InceptionV3 trained from scratch, as in the NGL paper's setup.

    Grayscale inputs are repeated to three channels and scaled from
    ``[0, 1]`` to ``[-1, 1]``, as
    ``keras.applications.inception_v3.preprocess_input`` scales pixels.
    Images smaller than InceptionV3's minimum size (75x75) are upsampled by
    the smallest integer factor that reaches it; NGL's own x8 upsampling
    (CIFAR's 32x32 to 256x256) is ``build_model(..., upsample=8)``, which the
    paper presets set.  The base is
    ``InceptionV3(include_top=False, weights=None, pooling='max')`` and the
    head Flatten → BN → Dense(128, relu) → Dropout(0.5) → BN → Dense(64,
    relu) → Dropout(0.5) → BN → Dense(C, softmax).

    :param input_shape: ``(height, width, channels)`` with 1 or 3 channels.
    :param num_classes: number of output classes.
    :returns: an uncompiled :class:`keras.Model`.
    :raises ValueError: for other channel counts.
    """
    keras = import_keras()
    from keras import layers

    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ValueError(f"inception_v3 takes images with 1 or 3 channels, got input_shape {tuple(input_shape)}")
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    if channels == 1:
        x = layers.Concatenate()([x, x, x])
    x = layers.Rescaling(2.0, offset=-1.0, name="preprocess_input")(x)
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
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
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


# "package.module:function", checked without importing anything.
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def is_import_path(name):
    """Whether *name* names a builder to import rather than a registered one.

    :param name: a model name.
    :returns: ``True`` for ``"package.module:function"`` not in :data:`MODELS`.
    """
    return isinstance(name, str) and name not in MODELS and _IMPORT_PATH.fullmatch(name) is not None


def check_model_name(name):
    """Check a model name without importing anything.

    An import path is imported only when a model is built, so reading a
    stored configuration never runs code (see :func:`get_model_builder`).

    :param name: a key of :data:`MODELS` or ``"package.module:function"``.
    :returns: *name*.
    :raises ValueError: otherwise.
    """
    if (isinstance(name, str) and name in MODELS) or is_import_path(name):
        return name
    raise ValueError(
        f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))} or give 'package.module:function'"
    )


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
            builder = getattr(_import_module(module_name), attribute)
        except ModuleNotFoundError as error:
            top = module_name.split(".")[0]
            if error.name != top:  # the module was found; something it imports was not
                raise ValueError(f"cannot import model builder {name!r}: {error}") from None
            raise ValueError(f"cannot import model builder {name!r}: {error} (not installed, not in "
                             f"{os.getcwd()}); run from the folder holding {top}.py or add its folder to "
                             "PYTHONPATH") from None
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import model builder {name!r}: {error}") from None
        if callable(builder):
            return builder
    raise ValueError(
        f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))} or give 'package.module:function'"
    )


def _import_module(module_name):
    """Import a module, looking in the current directory too when it is not found otherwise."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        here = os.getcwd()
        searched = {os.path.abspath(entry or os.curdir) for entry in sys.path if isinstance(entry, str)}
        if error.name != module_name.split(".")[0] or here in searched:
            raise
        # Console scripts put their own bin/ folder first on sys.path, not the current directory as
        # `python -m` does; it stays on the path (last, so installed modules win) for the module's own imports.
        sys.path.append(here)
        return importlib.import_module(module_name)


def build_model(name, input_shape, num_classes, upsample=1, augment=False, seed=0):
    """Build a fresh model, with an input pipeline in front when asked.

    The pipeline runs inside the model, in this order: NGL's augmentation
    (:data:`NGL_AUGMENTATION`: ``RandomZoom(0.2)`` on height and width
    independently, like ``ImageDataGenerator(zoom_range=0.2)``,
    ``RandomTranslation(0.1, 0.1)`` and ``RandomFlip("horizontal")``, all
    filling with the nearest pixel as ``ImageDataGenerator`` does, active in
    training only and seeded with *seed*), then ``UpSampling2D(upsample)``,
    then the builder's model on the enlarged images.  NGL augments the
    32x32 images before its three ``UpSampling2D`` layers too.  The output
    is cast to float32 if the builder's is not (``mixed_float16``).

    :param name: a key of :data:`MODELS` or ``"package.module:function"``.
    :param input_shape: ``(height, width, channels)``.
    :param num_classes: number of output classes.
    :param upsample: integer upsampling factor (>= 1).
    :param augment: add the augmentation layers.
    :param seed: seed of the augmentation layers.
    :returns: an uncompiled :class:`keras.Model`.
    """
    keras = import_keras()
    from keras import layers

    builder = get_model_builder(name)
    height, width, channels = tuple(input_shape)
    if upsample == 1 and not augment:
        model = builder(tuple(input_shape), int(num_classes))
    else:
        inputs = keras.Input(shape=tuple(input_shape))
        x = inputs
        if augment:
            zoom, shift = NGL_AUGMENTATION["zoom"], NGL_AUGMENTATION["shift"]
            x = layers.RandomZoom(zoom, zoom, fill_mode="nearest", seed=seed)(x)
            x = layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed + 1)(x)
            x = layers.RandomFlip("horizontal", seed=seed + 2)(x)
        if upsample > 1:
            x = layers.UpSampling2D(size=upsample)(x)
        core = builder((height * upsample, width * upsample, channels), int(num_classes))
        model = keras.Model(inputs, core(x), name=f"{core.name}_pipeline")
    if any(output.dtype != "float32" for output in model.outputs):
        model = keras.Model(model.inputs, layers.Activation("linear", dtype="float32")(model.outputs[0]),
                            name=model.name)
    return model
