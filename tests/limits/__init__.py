"""What bounds the work: the shared rate budget and its fairness, deadlines, retries."""
