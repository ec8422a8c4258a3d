//! Policy decisions: who may do what on which namespace.
