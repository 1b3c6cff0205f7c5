DROP TABLE compensation;
