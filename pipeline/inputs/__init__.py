"""The user's files: where they are (files), their label order (labels), the Keras model they
hold (keras_model), and whether git or DVC tracks them (tracking)."""
