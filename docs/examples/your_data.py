"""Search on your data with your model: arrays, a .npz file, a folder of images.

The data here is written by the script (scikit-learn's digits, as float
images and as PNG files), so it runs anywhere; put your own in its place.
"""

import os
import tempfile

import numpy
from PIL import Image
from sklearn.datasets import load_digits

from deap_lossgp.fitness import LossEvaluator, register_model
from deap_lossgp.fitness.datasets import load_dataset, register_arrays, task_from_path

digits = load_digits()
images, labels = digits.images, digits.target  # float64 images with pixel values 0..16
workspace = tempfile.mkdtemp()

# 1. NumPy arrays: float images need no quantisation; without a test split one is held out (seeded).
array_task = register_arrays("my_digits", images, labels)
dataset = load_dataset(array_task.dataset)
print("arrays:", array_task.name, dataset.x_train.shape, dataset.x_train.dtype,
      f"pixels {dataset.x_train.min():.0f}..{dataset.x_train.max():.0f}", "test split:", dataset.test_split)

# 2. A .npz file with x_train, y_train and, optionally, x_test, y_test (here: given).
npz = os.path.join(workspace, "digits.npz")
numpy.savez(npz, x_train=images[:1400], y_train=labels[:1400], x_test=images[1400:], y_test=labels[1400:])
npz_task = task_from_path(npz)
print("npz:", npz_task.dataset, "test images:", len(load_dataset(npz_task.dataset).x_test))

# 3. A folder with one subfolder of images per class, as keras.utils.image_dataset_from_directory reads it.
folder = os.path.join(workspace, "digit_images")
for index, (image, label) in enumerate(zip(images[:300], labels[:300])):
    os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
    Image.fromarray((image * 255 / 16).astype(numpy.uint8)).save(os.path.join(folder, f"class_{label}", f"{index}.png"))
folder_task = task_from_path(folder, label_noise=0.2, max_train_samples=200)
print("folder:", folder_task.name, "classes:", load_dataset(folder_task.dataset).num_classes)


# 4. Your own Keras model: builder(input_shape, num_classes) -> an uncompiled model ending in a softmax.
def tiny_mlp(input_shape, num_classes):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x), name="tiny_mlp")


register_model("tiny_mlp", tiny_mlp)

# 5. The fitness on those tasks: cross-entropy written as a tree against the stored cross-entropy baseline.
fitness = LossEvaluator(preset="quick", tasks=[npz_task], model="tiny_mlp", epochs=3,
                      baseline_dir=os.path.join(workspace, "baselines"))
record = fitness.evaluate_detailed("-y_true*log(y_pred)")
task = record["tasks"][npz_task.name]
print(f"cross-entropy as a tree: accuracy {task['val_accuracy']:.3f}, baseline {task['baseline']['val_accuracy']:.3f},"
      f" improvement {task['improvement']:+.3f}")
