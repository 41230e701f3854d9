/* Small behaviours shared by every page, as a static file so the Content-Security-Policy needs no inline script. */
document.addEventListener("click", function (event) {
  const print = event.target.closest("[data-print]");
  if (print) {
    event.preventDefault();
    window.print();
  }
});
