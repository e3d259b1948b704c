"""marginface: softmax vs margin heads for face recognition, judged on unseen identities."""

__version__ = "0.1.0"
