"""Training floor: the optimiser recipe and loop (trainer), one run (runner), many runs (workers), resumption
(checkpoint); architecture search beside it: the loop (search), what a search is (searches), running searches
(search_run), and the study of the cells they found (found)."""
