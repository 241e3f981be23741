module colonyservers

go 1.19
