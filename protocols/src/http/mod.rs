//! The HTTP redirect module (work in progress: the pure codec lands first).
