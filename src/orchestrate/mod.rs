//! Inventory, node lifecycle and cluster orchestration (issues: iPXE lifecycle, orchestration).
//! Not implemented yet.
