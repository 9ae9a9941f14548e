// zlib (apt zlib1g-dev to build; zlib1g, which every Debian system has, to run): gzip and BGZF FASTA and BED files.
#include <zlib.h>
