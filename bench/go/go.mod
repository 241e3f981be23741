module colonybench

go 1.19
