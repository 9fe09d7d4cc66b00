/* The tiny child of W1 and W4: exits at once. Static, so that what is measured is process
 * creation, not the dynamic loader. */
int main(void) { return 0; }
