//! Gatehouse control plane.
