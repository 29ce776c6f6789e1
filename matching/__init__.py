"""Provider ranking: pure numpy / scikit-learn, no Django. Fed with plain arrays."""
