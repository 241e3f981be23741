module colonycompare

go 1.19
