# The files GNU parallel's tutorial and examples work on, made afresh for every case.
set -e
printf 'A\nB\nC\n' > abc-file
printf 'D\nE\nF\n' > def-file
printf 'A\0B\0C\0' > abc0-file
printf 'A_B_C_' > abc_-file
printf 'f1\tf2\nA\tB\nC\tD\n' > tsv-file.tsv
seq 8 > num8
seq 128 > num128
seq 30000 > num30000
(echo "%head1"; echo "%head2"; seq 10) > 'num_%header'
printf 'HHHHAAABBBCCC' > fixedlen
printf 'first\n' > file1
printf 'second\n' > file2
printf 'one two\nthree\n' > file
printf '<html>a</html>\n' > index.html
printf '<html>b</html>\n' > about.html
printf 'zipped a\n' | gzip > a.gz
printf 'zipped b\n' | gzip > 'b c.gz'
printf 'x\n' > app.log
printf 'y\n' > 'My Error.LOG'
printf 'hola\n' > greet.es.txt
printf 'adios\n' > bye.es.txt
mkdir -p 'dir one' sub/inner
touch 'dir one/a' 'dir one/b' sub/inner/c
touch pict0001.jpg pict0002.jpg
touch 00:05 12:30
# parallel_book's files.
for i in 1 2 3 4 5; do seq "$i" > "example.$i"; done
seq 6 > seq6
seq 6 -1 1 > seq-6
# --pipe's files.
seq 1000000 > num1000000
seq 100000 > myfile
seq 200000 > bigfile
printf '>Sequence name1\nsequence\nsequence continued\n>Sequence name2\nsequence\nsequence continued\nmore sequence\n' > file.fasta
printf 'a 1 x\nb 1 y\nc 2 z\nd 3 w\ne 3 v\n' > my.csv
printf 'UserID, Consumption\n123,    1\n123,    2\n12-3,   1\n221,    3\n221,    1\n2/21,   5\n' > table.csv
# One time for every file, so what is made from them (gzip keeps the time) is the same.
find . -exec touch -h -d '2020-01-01 00:00:00' {} +
