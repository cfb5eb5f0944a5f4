//! iPXE script rendering and the arch -> binary table (issue: iPXE scripts). Not implemented yet.
