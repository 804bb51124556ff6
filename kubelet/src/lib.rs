//! Keelson's node agent. For now its simulated mode: one process registers many Nodes and plays
//! the kubelet's part for the pods bound to them, without containers.
