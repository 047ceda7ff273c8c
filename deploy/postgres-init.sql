-- One database per process kind (deploy/compose.yaml); each migrates its own at start.
CREATE DATABASE emporium_core;
CREATE DATABASE emporium_catalog;
CREATE DATABASE emporium_inventory;
