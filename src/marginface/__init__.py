"""marginface: softmax vs margin heads for face recognition, judged on unseen identities."""

from marginface.blas import choose_openblas_coretype

__version__ = "0.1.0"

# before any module imports FAISS: its bundled OpenBLAS picks its kernels once, when it loads
choose_openblas_coretype()
