-- One database per service group (deploy/compose.yaml); each group's processes migrate their own
-- at start.
CREATE DATABASE emporium_identity;
CREATE DATABASE emporium_catalog;
CREATE DATABASE emporium_search;
CREATE DATABASE emporium_inventory;
CREATE DATABASE emporium_ordering;
