//! Integration tests of the scheduler against an in-process API server.
