//! `ferroboot boot`: pixiecore's one-line mode. Every PXE machine on the segment boots the given
//! kernel and initrd(s), no config file and no inventory: the images are served from wherever
//! they are on disk, and every machine gets the same script.
