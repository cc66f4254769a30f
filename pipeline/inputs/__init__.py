"""The files a user brings, read and checked: model, labels and their order, held-out set.

Where they are (files), their labels in output order (labels) and whether that order fits the
answers (label_order), the Keras model they hold (keras_model, with Keras 2 `.h5` arguments
Keras 3 refuses dropped by keras2_h5), where init copied each from (provenance), and whether
git or DVC tracks them (tracking)."""
