# gnuplot script written by fl_sim experiment afd; run from this directory
set terminal pngcairo size 900,600
set output 'acc_vs_time.png'
set title 'AFD experiment (small preset): test accuracy, mean of 3 seeds'
set xlabel 'virtual time (s)'
set ylabel 'test accuracy'
set key bottom right
set grid
set logscale x
plot 'mean-full.dat' using 2:4 with lines lw 2 dt 1 title 'full', 'mean-full+c.dat' using 2:4 with lines lw 2 dt 2 title 'full+c', 'mean-fd.dat' using 2:4 with lines lw 2 dt 1 title 'fd', 'mean-fd+c.dat' using 2:4 with lines lw 2 dt 2 title 'fd+c', 'mean-afd-single.dat' using 2:4 with lines lw 2 dt 1 title 'afd-single', 'mean-afd-single+c.dat' using 2:4 with lines lw 2 dt 2 title 'afd-single+c', 'mean-afd-multi.dat' using 2:4 with lines lw 2 dt 1 title 'afd-multi', 'mean-afd-multi+c.dat' using 2:4 with lines lw 2 dt 2 title 'afd-multi+c'
unset output
set terminal pngcairo size 900,600
set output 'acc_vs_bytes.png'
set title 'AFD experiment (small preset): test accuracy, mean of 3 seeds'
set xlabel 'bytes down + up (MB)'
set ylabel 'test accuracy'
set key bottom right
set grid
set logscale x
plot 'mean-full.dat' using 3:4 with lines lw 2 dt 1 title 'full', 'mean-full+c.dat' using 3:4 with lines lw 2 dt 2 title 'full+c', 'mean-fd.dat' using 3:4 with lines lw 2 dt 1 title 'fd', 'mean-fd+c.dat' using 3:4 with lines lw 2 dt 2 title 'fd+c', 'mean-afd-single.dat' using 3:4 with lines lw 2 dt 1 title 'afd-single', 'mean-afd-single+c.dat' using 3:4 with lines lw 2 dt 2 title 'afd-single+c', 'mean-afd-multi.dat' using 3:4 with lines lw 2 dt 1 title 'afd-multi', 'mean-afd-multi+c.dat' using 3:4 with lines lw 2 dt 2 title 'afd-multi+c'
unset output
set terminal svg size 900,600
set output 'acc_vs_time.svg'
set title 'AFD experiment (small preset): test accuracy, mean of 3 seeds'
set xlabel 'virtual time (s)'
set ylabel 'test accuracy'
set key bottom right
set grid
set logscale x
plot 'mean-full.dat' using 2:4 with lines lw 2 dt 1 title 'full', 'mean-full+c.dat' using 2:4 with lines lw 2 dt 2 title 'full+c', 'mean-fd.dat' using 2:4 with lines lw 2 dt 1 title 'fd', 'mean-fd+c.dat' using 2:4 with lines lw 2 dt 2 title 'fd+c', 'mean-afd-single.dat' using 2:4 with lines lw 2 dt 1 title 'afd-single', 'mean-afd-single+c.dat' using 2:4 with lines lw 2 dt 2 title 'afd-single+c', 'mean-afd-multi.dat' using 2:4 with lines lw 2 dt 1 title 'afd-multi', 'mean-afd-multi+c.dat' using 2:4 with lines lw 2 dt 2 title 'afd-multi+c'
unset output
set terminal svg size 900,600
set output 'acc_vs_bytes.svg'
set title 'AFD experiment (small preset): test accuracy, mean of 3 seeds'
set xlabel 'bytes down + up (MB)'
set ylabel 'test accuracy'
set key bottom right
set grid
set logscale x
plot 'mean-full.dat' using 3:4 with lines lw 2 dt 1 title 'full', 'mean-full+c.dat' using 3:4 with lines lw 2 dt 2 title 'full+c', 'mean-fd.dat' using 3:4 with lines lw 2 dt 1 title 'fd', 'mean-fd+c.dat' using 3:4 with lines lw 2 dt 2 title 'fd+c', 'mean-afd-single.dat' using 3:4 with lines lw 2 dt 1 title 'afd-single', 'mean-afd-single+c.dat' using 3:4 with lines lw 2 dt 2 title 'afd-single+c', 'mean-afd-multi.dat' using 3:4 with lines lw 2 dt 1 title 'afd-multi', 'mean-afd-multi+c.dat' using 3:4 with lines lw 2 dt 2 title 'afd-multi+c'
unset output
