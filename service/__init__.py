"""The served side: a release bundle, the lite-runtime predictor and a small WSGI app.

Nothing under service/ may import TensorFlow, scikit-learn or pickle: it runs on 512 MB.
"""
